"""``reconcile completion SHELL``: a script that completes commands and options in bash, zsh, fish or PowerShell.

Click writes the scripts for bash, zsh and fish. It has none for PowerShell, so this module holds one: it asks
``reconcile`` for completions the way click's bash script does (``_RECONCILE_COMPLETE=bash_complete`` with
``COMP_WORDS`` and ``COMP_CWORD``) and turns each ``type,value`` line into a completion result.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from reconciler.cli.app import cli

COMPLETE_VAR = "_RECONCILE_COMPLETE"

POWERSHELL = r"""# reconcile completion for PowerShell: add to $PROFILE (reconcile completion powershell >> $PROFILE)
Register-ArgumentCompleter -Native -CommandName reconcile -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $words = @($commandAst.CommandElements | ForEach-Object { $_.ToString() })
    $cword = $words.Count
    if ($wordToComplete -ne '') { $cword = $words.Count - 1 } else { $words += '' }
    $env:COMP_WORDS = ($words -join ' ')
    $env:COMP_CWORD = $cword
    $env:_RECONCILE_COMPLETE = 'bash_complete'
    try {
        reconcile | ForEach-Object {
            $type, $value = $_ -split ',', 2
            if ($type -eq 'plain') {
                [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
            } elseif ($type -eq 'file' -or $type -eq 'dir') {
                Get-ChildItem -Path "$wordToComplete*" | ForEach-Object {
                    [System.Management.Automation.CompletionResult]::new($_.Name, $_.Name, 'ProviderItem', $_.Name)
                }
            }
        }
    } finally {
        Remove-Item Env:COMP_WORDS, Env:COMP_CWORD, Env:_RECONCILE_COMPLETE -ErrorAction SilentlyContinue
    }
}
"""


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish", "powershell"]))
def completion_command(shell: str) -> None:
    """Print the completion script of SHELL: commands, sub-commands, options and their choices complete.

    \b
    bash:        eval "$(reconcile completion bash)"        (in ~/.bashrc)
    zsh:         eval "$(reconcile completion zsh)"         (in ~/.zshrc)
    fish:        reconcile completion fish > ~/.config/fish/completions/reconcile.fish
    PowerShell:  reconcile completion powershell >> $PROFILE
    """
    if shell == "powershell":
        click.echo(POWERSHELL, nl=False)
        return
    completer = get_completion_class(shell)
    assert completer is not None
    click.echo(completer(cli, {}, "reconcile", COMPLETE_VAR).source())
