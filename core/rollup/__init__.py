"""Daily per-village rollups of the case figures, so that town and district figures read a few
thousand summed rows instead of every case of the period."""
