"""From run directories to typed results: grading, analysis and the statistics behind every report."""
