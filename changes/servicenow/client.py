"""Reading ServiceNow's Table API: one table, oldest update first, page by page.

Only the configured instance is ever called: a `Link: <...>; rel="next"` pointing anywhere else
is refused, and redirects are not followed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

from changes.servicenow.exceptions import PullFailed
from changes.servicenow.models import ServiceNowConfig
from changes.servicenow.payloads import FIELDS
from governance.api.parsers import UnsafeJSON, load_json

TIMEOUT_SECONDS = 30
MAX_PAGES = 10_000  # a bound on a server that keeps answering "next"


def table_pages(
    config: ServiceNowConfig, table: str, since: datetime | None, page_size: int
) -> Iterator[list[dict]]:
    """Yield the records of `table` updated at or after `since`, one page (a list) at a time."""
    session = requests.Session()
    session.auth = (config.username, _password(config))
    session.headers["Accept"] = "application/json"
    query = "ORDERBYsys_updated_on"
    if since is not None:
        query = f"sys_updated_on>={since:%Y-%m-%d %H:%M:%S}^{query}"
    url: str | None = f"{config.instance_url}/api/now/table/{table}"
    params: dict | None = {
        "sysparm_query": query,
        "sysparm_display_value": "all",
        "sysparm_fields": ",".join(FIELDS[table]),
        "sysparm_limit": page_size,
        "sysparm_offset": 0,
    }
    for _ in range(MAX_PAGES):
        response = _get(session, url, params)
        records = _records(response)
        if records:
            yield records
        next_url = response.links.get("next", {}).get("url")
        if next_url and next_url != response.url:
            url, params = _same_instance(config, next_url), None
        elif len(records) == page_size and params is not None:
            params = {**params, "sysparm_offset": params["sysparm_offset"] + page_size}
        else:
            return


def _password(config: ServiceNowConfig) -> str:
    if not (config.instance_url and config.username and config.password_file):
        raise PullFailed(
            "The pull is not configured: manage.py configure_integration servicenow "
            "--instance URL --user NAME --password-file FILE."
        )
    try:
        return Path(config.password_file).read_text().strip()
    except OSError as exc:
        raise PullFailed(f"Cannot read the password file {config.password_file}: {exc}") from None


def _get(session: requests.Session, url: str, params: dict | None) -> requests.Response:
    try:
        response = session.get(url, params=params, timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        raise PullFailed(f"ServiceNow did not answer ({url}): {exc}") from None
    if response.status_code != 200:
        raise PullFailed(
            f"ServiceNow answered {response.status_code} {response.reason} for {url}: "
            f"{response.text[:200]}"
        )
    return response


def _records(response: requests.Response) -> list[dict]:
    try:
        document = load_json(response.text)
    except UnsafeJSON as exc:
        raise PullFailed(f"ServiceNow's answer was refused: {exc.message}") from None
    except ValueError:
        raise PullFailed("ServiceNow's answer is not JSON.") from None
    result = document.get("result") if isinstance(document, dict) else None
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise PullFailed("ServiceNow's `result` is not a list of records.")
    return result


def _same_instance(config: ServiceNowConfig, url: str) -> str:
    wanted, given = urlsplit(config.instance_url), urlsplit(url)
    if (given.scheme, given.netloc) != (wanted.scheme, wanted.netloc):
        raise PullFailed(f"ServiceNow's next page points outside the instance: {url[:200]}")
    return url
