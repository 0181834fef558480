"""After the search: the champion refitted, tested and registered, the study's report, the summary."""
