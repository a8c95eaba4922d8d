"""Campaigns (摸排 / 敲门行动): a checklist of households per 邻长, outcomes that feed the
registry back, deadlines run by the case engine's sweep, and per-node counters for the board."""
