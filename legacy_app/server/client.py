"""The HTTP client the package's tools (seeding over HTTP, compare) talk to a running server with."""
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry


def http_session(retries: int = 3) -> requests.Session:
    """A keep-alive session, for one thread (requests' Session is not thread-safe).

    A request that failed before an answer came is sent again only if it is idempotent: urllib3's
    Retry leaves POST out of its default allowed_methods (a POST whose answer was lost may have
    been carried out), while a GET is resent, e.g. when the server closed the kept-alive connection
    after a 500 just as the next request left. A connection that could not be made carried nothing,
    so that is retried for every method. No retry on a status: a 503 is an answer. retries=0 for
    measurements in which a failed request is the result.
    """
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=retries, backoff_factor=0.2)))
    return session
