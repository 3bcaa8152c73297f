"""LOG_FORMAT=json: one JSON object per log line, for log shippers that parse lines.

Every line has time (UTC, ISO 8601), level, pid, logger and message; a request line adds the
fields the text line holds (method, path, status, duration_ms, request_id) as their own keys.
"""
import json
import logging
import re
from datetime import datetime, timezone

# Set by http/observer.py through `extra=`: the request line's fields, beside its formatted message.
REQUEST_FIELDS = "request_fields"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, REQUEST_FIELDS, {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # json.dumps escapes C0 controls (newlines too) but, with ensure_ascii=False, not DEL, the C1
        # controls or U+2028/U+2029, which end a line for splitlines() and JavaScript: escaped here.
        return _UNESCAPED_SEPARATORS.sub(_json_escape, json.dumps(entry, ensure_ascii=False, default=str))


_UNESCAPED_SEPARATORS = re.compile("[\x7f-\x9f\u2028\u2029]")


def _json_escape(match: "re.Match[str]") -> str:
    return f"\\u{ord(match.group()):04x}"
