"""The benchmark's stand-in for the Python loggers that myapp replaces.

It does what they do, with the same standard-library calls: append
"[myapp] executed at <datetime.now()>" to LOGFILE (default
/var/tmp/myapp_timer.log) and print "[myapp] wrote to <path>".
"""

import os
from datetime import datetime

NAME = "myapp"


def append_line(path):
    with open(path, "a", encoding="utf-8") as log:
        log.write("[{}] executed at {}\n".format(NAME, datetime.now()))


if __name__ == "__main__":
    target = os.getenv("LOGFILE", "/var/tmp/{}_timer.log".format(NAME))
    append_line(target)
    print("[{}] wrote to {}".format(NAME, target))
