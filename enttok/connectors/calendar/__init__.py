"""The calendar connector: events of exported C{.ics} files, recurrences expanded."""
