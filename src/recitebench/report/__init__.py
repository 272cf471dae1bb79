"""Stage 6: the report and run tables, read from run folders (nothing here trains or recites)."""
