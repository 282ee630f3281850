"""Many runs: the shared plan of ablation grids and leaderboards, and running their cells."""
