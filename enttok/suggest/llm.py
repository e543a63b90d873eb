"""An optional summary paragraph from an OpenAI-compatible chat endpoint (e.g. Ollama).

It only ever adds to the deterministic suggestions: when the endpoint is
absent, slow or broken, the caller gets an L{LLMUnavailable} and goes on.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

TIMEOUT = 20.0
MAX_REPLY_CHARS = 2000

PROMPT = ("You write one short paragraph (2-4 sentences, first person, no list) summarising "
          "a person's work day for their journal, from the items below. Use only the items; "
          "do not invent anything. Write in the language most of the items are in.")


@frozen
class LLMSettings:
    """
    The C{llm} settings: an OpenAI-compatible server for the optional summary.

    @ivar base_url: the API root (C{None}: summaries are off).
    @ivar model: the model name asked for.
    @ivar api_key: sent as a bearer token when set.
    """

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> LLMSettings:
        """The value of a validated C{llm} settings section."""
        return cls(section.get("base_url") or None, section.get("model") or None,
                   section.get("api_key") or None)


class LLMUnavailable(Exception):
    """No usable answer (not configured, timeout, HTTP error or a malformed reply)."""


@inlineCallbacks
def summarise(http: Any, clock: IReactorTime, config: LLMSettings,
              lines: Sequence[str]) -> Generator[Deferred[Any], Any, str]:
    """
    @param http: a L{treq.client.HTTPClient}.
    @return: a Deferred that fires with the paragraph; errbacks with L{LLMUnavailable}.
    """
    if not config.base_url or not config.model:
        raise LLMUnavailable("no llm.base_url / llm.model configured")
    headers = {b"content-type": [b"application/json"]}
    if config.api_key:
        headers[b"authorization"] = [f"Bearer {config.api_key}".encode()]
    body = json.dumps({"model": config.model, "temperature": 0.2, "max_tokens": 300,
                       "messages": [{"role": "system", "content": PROMPT},
                                    {"role": "user", "content": "\n".join(lines)}]})
    url = f"{config.base_url.rstrip('/')}/chat/completions"
    d = http.post(url, data=body.encode("utf-8"), headers=headers, reactor=clock)
    d.addCallback(lambda response: _read(response))
    d.addTimeout(TIMEOUT, clock, onTimeoutCancel=_timed_out)
    try:
        status, raw = yield d
    except LLMUnavailable:
        raise
    except Exception as e:
        if isinstance(e, CancelledError):
            raise LLMUnavailable(f"no answer within {TIMEOUT:g} s") from None
        raise LLMUnavailable(f"request failed: {type(e).__name__}") from None
    if status != 200:
        raise LLMUnavailable(f"the server answered {status}")
    try:
        text = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMUnavailable("the reply is not an OpenAI-style chat completion") from None
    if not isinstance(text, str) or not text.strip():
        raise LLMUnavailable("the reply is empty")
    return text.strip()[:MAX_REPLY_CHARS]


def _timed_out(result: object, timeout: float) -> object:
    """
    The deadline passed: a failure, whatever it is, is the timeout's doing.

    A canceled request fails with C{CancelledError} or, once connected, with
    C{ResponseNeverReceived}; an answer that came anyway is kept.
    """
    if isinstance(result, Failure):
        raise LLMUnavailable(f"no answer within {timeout:g} s")
    return result


def _read(response: Any) -> Any:
    from treq import content

    return content(response).addCallback(lambda raw: (response.code, raw))
