"""The three phases of a sweep, each a function of what the one before produced: prepare (checks,
data, study, tracking), search (the trials) and finalise (champion, report, summary)."""
