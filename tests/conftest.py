"""Settings for every test: no test asserts on time (figures live in bench/).

Hypothesis's per-example deadline is a timing assertion: on a loaded two-core machine a
first call can take 0.5 s where a rerun takes 0.2 ms, so it is off everywhere.
"""

from hypothesis import settings

settings.register_profile("kith", deadline=None)
settings.load_profile("kith")
