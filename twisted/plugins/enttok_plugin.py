"""twistd plugin: ``twistd -n enttok`` starts the enttok backend."""

from twisted.application.service import ServiceMaker

enttok = ServiceMaker(
    "enttok",
    "enttok.tap",
    "The local backend of the enttok-e desktop app (REST + WebSocket on 127.0.0.1).",
    "enttok",
)
