"""Session fixtures: real servers (Postgres, moto, the GCS emulator, s3rver).

Server fixtures live in their own modules and are re-exported here. Under ``CI=true`` a
fixture that cannot start its server fails the test; it never skips.
"""

from tests.browser_support import browser  # noqa: F401 - the headless Chromium fixture
from tests.fixtures_cloud import *  # noqa: F403
from tests.fixtures_postgres import *  # noqa: F403
