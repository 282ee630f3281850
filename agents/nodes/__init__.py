"""Graph nodes, one file each: plain functions from the graph state to its update."""
