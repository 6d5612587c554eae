"""The AdminService client's transport and capabilities: real TLS on 127.0.0.1, a real NTLM handshake (pyspnego's
acceptor), paging, retries and every kind of bad answer a site, a proxy or a network gives."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from reconciler.site.adminservice.metadata import parse_metadata
from reconciler.site.adminservice.transport import Transport, Tuning, odata_key, query_string
from reconciler.site.errors import PermanentSiteError, TransientSiteError
from reconciler.site.options import Auth, Credentials, SiteOptions
from tests.wire_fake import FakeServer, FakeSite, Special, make_ca

PASSWORD = "Correct horse 7!"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def fake(tls: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    users = tmp_path / "ntlm-users"
    users.write_text(f"CORP:alice:{PASSWORD}\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))  # pyspnego's NTLM acceptor reads its users from here
    site = FakeSite(users={"CORP\\alice": PASSWORD})
    server = FakeServer(site, tls[1], tls[2])
    yield site
    server.close()


def connect(site: FakeSite, tls: tuple[Path, Path, Path], waits: list[float] | None = None,
            password: str = PASSWORD, auth: Auth = Auth.NTLM, **tuning: int | float) -> Transport:
    options = SiteOptions(url=site.url, ca_bundle=tls[0], auth=auth,
                          credentials=Credentials(username="CORP\\alice", password=password,
                                                      password_from="RECONCILE_SITE_PASSWORD"), timeout=5)
    recorded = waits if waits is not None else []
    return Transport(options, Tuning(**tuning), sleep=recorded.append, jitter=lambda: 1.0)  # type: ignore[arg-type]


# -- authentication ----------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [Auth.NTLM, Auth.NEGOTIATE])
def test_ntlm_handshake_runs_on_one_connection_and_the_connection_stays_authenticated(
        fake: FakeSite, tls: tuple[Path, Path, Path], auth: Auth) -> None:
    fake.route = lambda m, p, b: (200, {}, {"value": [{"PackageID": "PS100001"}]})
    transport = connect(fake, tls, auth=auth)
    try:
        assert transport.get("SMS_TaskSequencePackage", "PS100001") == {"PackageID": "PS100001"}
        assert transport.get("SMS_TaskSequencePackage", "PS100002") == {"PackageID": "PS100001"}
    finally:
        transport.close()
    legs = fake.seen
    assert [s.authorization is None for s in legs[:2]] == [True, False]  # anonymous, then the token
    assert len({s.connection for s in legs}) == 1, "every leg and the next request travel on one connection"
    assert fake.handshakes == 1
    assert [s.user for s in fake.requests()] == ["CORP\\alice", "CORP\\alice"]


def test_a_wrong_password_is_a_401_naming_what_was_tried_and_never_the_password(
        fake: FakeSite, tls: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport = connect(fake, tls, password="not the password")
    with pytest.raises(PermanentSiteError) as caught:
        transport.list("SMS_Collection")
    transport.close()
    message = str(caught.value)
    assert "HTTP 401" in message and "NTLM as CORP\\alice" in message and "offers Negotiate" in message
    assert "2509" in message  # NTLM is refused by recent sites: the message says what to use instead
    assert "not the password" not in message + caplog.text
    assert not fake.requests(), "nothing reached the site"


def test_a_forged_final_token_on_the_200_is_refused(fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    fake.forge_final_token = True
    transport = connect(fake, tls, auth=Auth.NEGOTIATE)
    with pytest.raises(PermanentSiteError, match="mutual authentication"):
        transport.list("SMS_Collection")
    transport.close()


def test_a_bearer_token_is_sent_as_such_and_never_shown(tls: tuple[Path, Path, Path],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    site = FakeSite(bearer="eyJ0eXAiOiJKV1Qi.secret-part")
    server = FakeServer(site, tls[1], tls[2])
    try:
        options = SiteOptions(url=site.url, ca_bundle=tls[0], auth=Auth.BEARER,
                              credentials=Credentials(token="eyJ0eXAiOiJKV1Qi.secret-part", token_from="env"))
        transport = Transport(options)
        assert transport.list("SMS_Collection") == []
        wrong = Transport(SiteOptions(url=site.url, ca_bundle=tls[0], auth=Auth.BEARER,
                                      credentials=Credentials(token="expired", token_from="env")))
        with pytest.raises(PermanentSiteError, match="HTTP 401") as caught:
            wrong.list("SMS_Collection")
        transport.close()
        wrong.close()
    finally:
        server.close()
    assert "secret-part" not in caplog.text + str(caught.value) and "expired" not in str(caught.value)


# -- TLS -------------------------------------------------------------------------------------------------


def test_an_untrusted_certificate_is_refused_naming_the_ca_bundle_to_give(
        fake: FakeSite, tls: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other_ca = make_ca(tmp_path, "Someone else")[0]
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    transport = Transport(SiteOptions(url=fake.url, ca_bundle=other_ca, auth=Auth.NTLM,
                                      credentials=Credentials("CORP\\alice", PASSWORD)))
    with pytest.raises(PermanentSiteError, match=r"not trusted by the CA bundle .*--ca-bundle"):
        transport.list("SMS_Collection")
    transport.close()
    assert not fake.seen


def test_ssl_cert_file_is_honoured_and_insecure_warns_on_every_connection(
        fake: FakeSite, tls: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))
    creds = Credentials("CORP\\alice", PASSWORD)
    transport = Transport(SiteOptions(url=fake.url, auth=Auth.NTLM, credentials=creds))
    assert transport.list("SMS_Collection") == []
    transport.close()
    monkeypatch.delenv("SSL_CERT_FILE")
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        insecure = Transport(SiteOptions(url=fake.url, insecure=True, auth=Auth.NTLM, credentials=creds))
        assert insecure.list("SMS_Collection") == []
        insecure.close()
    assert caplog.text.count("TLS certificate verification is OFF") == 2


# -- paging and the query string ---------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "pages"), [(2500, 3), (1000, 2), (0, 1)])
def test_lists_page_with_top_and_skip_until_a_short_page(fake: FakeSite, tls: tuple[Path, Path, Path],
                                                         rows: int, pages: int) -> None:
    data = [{"PackageID": f"PS1{i:05X}", "SourceVersion": 1} for i in range(rows)]

    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], object]:
        query = dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))
        top, skip = int(query["$top"]), int(query["$skip"])
        return 200, {}, {"@odata.context": "x", "value": data[skip:skip + top]}

    fake.route = route
    transport = connect(fake, tls)
    got = transport.list("SMS_TaskSequencePackage", ("PackageID", "SourceVersion"), "startswith(Name,'Win 11') eq true")
    transport.close()
    assert got == data
    paths = [s.path for s in fake.requests()]
    assert len(paths) == pages
    assert transport.counts[("GET", "list")] == pages
    assert paths[0] == ("/AdminService/wmi/SMS_TaskSequencePackage?$select=PackageID,SourceVersion"
                        "&$filter=startswith(Name,'Win%2011')%20eq%20true&$top=1000&$skip=0")
    assert [p.rsplit("$skip=", 1)[1] for p in paths] == [str(1000 * i) for i in range(pages)]


def test_keys_and_filter_values_are_quoted_and_encoded() -> None:
    assert odata_key("PS100012") == "('PS100012')"
    assert odata_key(16777219) == "(16777219)"
    assert odata_key("O'Brien & co/x") == "('O''Brien%20%26%20co%2Fx')"
    assert unquote(query_string({"filter": "Name eq 'a&b=c'"})) == "$filter=Name eq 'a&b=c'"
    assert "&b" not in query_string({"filter": "Name eq 'a&b'"})


# -- transient faults ----------------------------------------------------------------------------------


def test_503_and_429_are_retried_honouring_retry_after(fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    answers = [(503, {"Retry-After": "3"}, b""), (429, {}, b""), (200, {}, {"value": [{"a": 1}]})]
    fake.route = lambda m, p, b: answers.pop(0)
    waits: list[float] = []
    transport = connect(fake, tls, waits)
    assert transport.list("SMS_Collection") == [{"a": 1}]
    transport.close()
    assert waits[0] >= 3 and len(waits) == 2
    assert transport.counts[("GET", "list")] == 1 and transport.attempts == 3


def test_retries_are_bounded_then_transient_with_the_sites_retry_after(fake: FakeSite,
                                                                      tls: tuple[Path, Path, Path]) -> None:
    fake.route = lambda m, p, b: (502, {"Retry-After": "2"}, b"<html>Bad gateway</html>")
    waits: list[float] = []
    transport = connect(fake, tls, waits, retries=3, backoff=1)
    with pytest.raises(TransientSiteError, match=r"HTTP 502 \(4 attempts") as caught:
        transport.list("SMS_Collection")
    transport.close()
    assert caught.value.retry_after == 2
    assert waits == [2, 2, 4]  # backoff doubles; never shorter than Retry-After
    assert len(fake.requests()) == 4


def test_a_long_retry_after_is_handed_to_the_caller_without_waiting(fake: FakeSite,
                                                                   tls: tuple[Path, Path, Path]) -> None:
    fake.route = lambda m, p, b: (503, {"Retry-After": "600"}, b"")
    waits: list[float] = []
    transport = connect(fake, tls, waits)
    with pytest.raises(TransientSiteError) as caught:
        transport.get("SMS_Collection", "PS100001")
    transport.close()
    assert caught.value.retry_after == 600 and waits == []


def test_a_reset_connection_is_retried_for_a_read_but_a_create_is_not_sent_twice(
        fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    answers = [(0, {}, Special("reset")), (200, {}, {"value": [{"CollectionID": "PS100001"}]})]
    fake.route = lambda m, p, b: answers.pop(0)
    transport = connect(fake, tls)
    assert transport.get("SMS_Collection", "PS100001") == {"CollectionID": "PS100001"}
    fake.route = lambda m, p, b: (0, {}, Special("reset"))
    with pytest.raises(TransientSiteError, match="was not sent again"):
        transport.create("SMS_TaskSequencePackage", {"Name": "x"})
    transport.close()
    assert len(fake.requests("POST")) == 1


def test_a_site_that_does_not_answer_in_time_is_transient(fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    fake.route = lambda m, p, b: (0, {}, Special("hang"))
    options = SiteOptions(url=fake.url, ca_bundle=tls[0], auth=Auth.NTLM,
                          credentials=Credentials("CORP\\alice", PASSWORD), timeout=0.5)
    transport = Transport(options, Tuning(retries=1), sleep=lambda s: None)
    with pytest.raises(TransientSiteError, match="no answer in time"):
        transport.list("SMS_Collection")
    fake.stop_hanging.set()
    transport.close()


# -- permanent errors ------------------------------------------------------------------------------------


def test_an_odata_error_names_the_url_the_status_and_the_sites_message_shortened(
        fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    long = "Invalid property 'Sequnce' " + "x" * 5000
    fake.route = lambda m, p, b: (400, {}, {"error": {"code": "400", "message": long}})
    transport = connect(fake, tls)
    with pytest.raises(PermanentSiteError) as caught:
        transport.update("SMS_TaskSequencePackage", "PS100001", {"Sequnce": ""})
    transport.close()
    message = str(caught.value)
    assert message.startswith(f"PUT {fake.url}/wmi/SMS_TaskSequencePackage('PS100001'): HTTP 400: Invalid property")
    assert len(message) < 600 and "5,027 characters" in message


def test_access_denied_as_404_says_the_account_may_not_be_an_administrative_user(
        fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    fake.route = lambda m, p, b: (404, {}, {"error": {"code": "404", "message": "Access denied  WMI QUERY: "}})
    transport = connect(fake, tls)
    with pytest.raises(PermanentSiteError, match=r"CORP\\alice may not be a ConfigMgr administrative user"):
        transport.get("SMS_TaskSequencePackage", "PS100001")
    transport.close()


def test_a_missing_object_is_none_and_deleting_it_again_is_done(fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    fake.route = lambda m, p, b: (404, {}, {"error": {"code": "404", "message": "Not found"}})
    transport = connect(fake, tls)
    assert transport.get("SMS_TaskSequencePackage", "PS1FFFFF") is None
    assert transport.delete("SMS_TaskSequencePackage", "PS1FFFFF") is False
    transport.close()


@pytest.mark.parametrize(("status", "headers", "body", "expected"), [
    (200, {"Content-Type": "application/json"}, b'{"value": [{"a": 1}', "not valid JSON"),
    (200, {}, {"@odata.context": "x"}, "without a 'value' list"),
    (200, {}, {"value": "PS100001"}, "without a 'value' list"),
    (200, {}, [1, 2], "not an object"),
    (404, {"Content-Type": "text/html"}, b"<html><body>404 - File or directory not found.</body></html>",
     "HTTP 404: an HTML page"),
    (200, {"Content-Type": "text/html"}, b"<html>Proxy login</html>", "HTML page, not the AdminService's JSON"),
    (200, {"Content-Type": "application/json"}, Special("truncate", b'{"value": [{"PackageID": "PS1'),
     "cut short"),
    (200, {"Content-Length": str(10 * 1024 ** 3)}, b"", "10,737,418,240 bytes, more than"),
    (200, {}, Special("stream"), "more than the 1,048,576 bytes"),
])
def test_a_bad_answer_is_one_permanent_error_naming_the_url_and_status(
        fake: FakeSite, tls: tuple[Path, Path, Path], status: int, headers: dict[str, str], body: object,
        expected: str) -> None:
    fake.route = lambda m, p, b: (status, headers, body)
    transport = connect(fake, tls, max_response_bytes=1024 * 1024)
    with pytest.raises(PermanentSiteError) as caught:
        transport.list("SMS_TaskSequencePackage", ("PackageID",))
    transport.close()
    message = str(caught.value)
    assert expected in message, message
    assert f"{fake.url}/wmi/SMS_TaskSequencePackage" in message and f"HTTP {status}" in message
    assert len(message) < 500


def test_a_method_call_posts_to_the_class_or_the_instance_and_checks_return_value(
        fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    answers = [(201, {}, {"@odata.context": "x#__PARAMETERS", "ReturnValue": 0, "PolicyCount": 3}),
               (201, {}, {"ReturnValue": 0}), (201, {}, {"ReturnValue": 2})]
    fake.route = lambda m, p, b: answers.pop(0)
    transport = connect(fake, tls)
    assert transport.call("SMS_TaskSequencePackage", "GetTSPolicies", {"PackageID": "PS100001"})["PolicyCount"] == 3
    transport.call("SMS_ContentPackage", "AddDistributionPointGroup", {"DistributionPointGroup": ["{G}"]},
                   key="PS100001")
    with pytest.raises(PermanentSiteError, match="returned 2"):
        transport.call("SMS_Collection", "RequestRefresh", {}, key="PS100009")
    transport.close()
    assert [s.path for s in fake.requests("POST")] == [
        "/AdminService/wmi/SMS_TaskSequencePackage.GetTSPolicies",
        "/AdminService/wmi/SMS_ContentPackage('PS100001')/AdminService.AddDistributionPointGroup",
        "/AdminService/wmi/SMS_Collection('PS100009')/AdminService.RequestRefresh"]
    assert transport.counts[("POST", "method")] == 3


# -- $metadata ---------------------------------------------------------------------------------------------

CSDL = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
 <edmx:DataServices>
  <Schema Namespace="AdminService" xmlns="http://docs.oasis-open.org/odata/ns/edm">
   <EntityType Name="SMS_PackageBaseclass"><Key><PropertyRef Name="PackageID"/></Key>
    <Property Name="PackageID" Type="Edm.String"/></EntityType>
   <EntityType Name="SMS_TaskSequencePackage" BaseType="AdminService.SMS_PackageBaseclass">
    <Property Name="Sequence" Type="Edm.String"/></EntityType>
   <EntityType Name="SMS_MachineSettings"><Key><PropertyRef Name="ResourceID"/></Key>
    <Property Name="ResourceID" Type="Edm.Int64"/>
    <Property Name="MachineVariables" Type="Collection(AdminService.SMS_MachineVariable)"/></EntityType>
   <EntityType Name="SMS_Collection"><Key><PropertyRef Name="CollectionID"/></Key></EntityType>
   <Action Name="AddMembershipRule" IsBound="true">
    <Parameter Name="bindingParameter" Type="AdminService.SMS_Collection"/>
    <Parameter Name="collectionRule" Type="AdminService.SMS_CollectionRule"/></Action>
   <Action Name="GetTSPolicies"><Parameter Name="PackageID" Type="Edm.String"/></Action>
   <EntityContainer Name="Container">
    <EntitySet Name="SMS_TaskSequencePackage" EntityType="AdminService.SMS_TaskSequencePackage"/>
    <EntitySet Name="SMS_MachineSettings" EntityType="AdminService.SMS_MachineSettings"/>
    <EntitySet Name="SMS_Collection" EntityType="AdminService.SMS_Collection"/>
    <ActionImport Name="SMS_TaskSequencePackage.GetTSPolicies" Action="AdminService.GetTSPolicies"/>
   </EntityContainer>
  </Schema>
 </edmx:DataServices>
</edmx:Edmx>"""


def test_metadata_lists_classes_with_their_keys_static_and_bound_methods() -> None:
    capabilities = parse_metadata(CSDL)
    assert capabilities.key_of("SMS_TaskSequencePackage") == ("PackageID",)  # inherited from the base class
    assert capabilities.key_of("sms_machinesettings") == ("ResourceID",)
    assert capabilities.offers("SMS_TaskSequencePackage", "GetTSPolicies")
    assert capabilities.offers("SMS_Collection", "AddMembershipRule")
    assert not capabilities.offers("SMS_TaskSequencePackage", "SetSequence")
    assert not capabilities.offers("SMS_Advertisement")
    assert not capabilities.offers("SMS_TaskSequencePackage", "AddMembershipRule")


@pytest.mark.parametrize(("document", "expected"), [
    (b"<html><body>404</body></html>", "root element is 'html'"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><edmx:Edmx xmlns:edmx="e">&a;</edmx:Edmx>',
     "not a CSDL XML document"),
    (b"not xml at all", "not a CSDL XML document"),
])
def test_a_metadata_document_that_is_not_csdl_is_refused(document: bytes, expected: str) -> None:
    with pytest.raises(PermanentSiteError, match=expected):
        parse_metadata(document)


def test_metadata_is_read_over_the_wire_and_counted(fake: FakeSite, tls: tuple[Path, Path, Path]) -> None:
    fake.route = lambda m, p, b: (200, {"Content-Type": "application/xml"}, CSDL)
    transport = connect(fake, tls)
    capabilities = parse_metadata(transport.metadata())
    transport.close()
    assert capabilities.offers("SMS_Collection")
    assert fake.requests()[0].path == "/AdminService/wmi/$metadata"
    assert transport.counts[("GET", "metadata")] == 1


def test_no_password_hash_or_token_reaches_any_log_at_debug(fake: FakeSite, tls: tuple[Path, Path, Path],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from spnego._ntlm_raw.crypto import ntowfv1

    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, pyspnego's
    for name in ("spnego", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    transport = connect(fake, tls, auth=Auth.NEGOTIATE)
    transport.list("SMS_Collection")
    transport.close()
    tokens = [s.authorization.split(" ", 1)[1] for s in fake.seen if s.authorization]
    assert tokens and caplog.records
    said = caplog.text
    assert PASSWORD not in said and ntowfv1(PASSWORD).hex() not in said.lower()
    assert not [t for t in tokens if t[:40] in said]
