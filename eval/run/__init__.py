"""Running one strategy over questions: the runner, and local servers to run against."""
