"""Plans: typed actions ordered by dependency, and the planner that makes them."""
