"""Many runs: the ablation grid and the leaderboard as their TOML declares them, what both plans share, and running
their cells."""
