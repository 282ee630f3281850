"""The typed core every layer uses: types, statistics, errors, JSON lines, logging, caches, the run directory."""
