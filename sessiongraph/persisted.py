"""Persisted queries: Apollo's APQ (documents by SHA-256, kept in the cache backend so every
worker shares them) and trusted documents loaded from a manifest file at start-up."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from .cache import CacheBackend, MemoryBackend
from .errors import BadUserInput, PersistedQueryNotFound, PersistedQueryNotInList

__all__ = ["PersistedQueries", "TrustedDocuments", "TrustedDocumentsError", "document_hash"]

_HASH = re.compile(r"^[0-9a-f]{64}$")
_KEY = "apq|"
# Never dropped by the invalidation of upstream reads; only by age or the backend's bounds.
_TAG = "persisted-queries"
_TTL_SECONDS = 7 * 86400
_MAX_DOCUMENT_ID = 200
# A body or query string mentioning neither needs no parsing here.
_MARKERS = (b"persistedQuery", b"documentId")


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class TrustedDocumentsError(ValueError):
    """The trusted-documents file cannot be used; raised at start-up, never per request."""


class TrustedDocuments:
    """Documents by id (as the file names them) and by their SHA-256."""

    def __init__(self, documents: Mapping[str, str]) -> None:
        self._by_id = dict(documents)
        self._by_hash = {document_hash(text): text for text in documents.values()}

    def __len__(self) -> int:
        return len(self._by_hash)

    @classmethod
    def load(cls, path: Path) -> TrustedDocuments:
        """An Apollo persisted-query manifest, or GraphQL Codegen's `{hash: document}` map."""
        try:
            payload = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise TrustedDocumentsError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise TrustedDocumentsError(f"{path} is not valid JSON: {exc}") from exc
        if isinstance(payload, dict) and payload.get("format") == "apollo-persisted-query-manifest":
            operations = payload.get("operations")
            if not isinstance(operations, list):
                raise TrustedDocumentsError(f"{path}: the manifest has no `operations` list")
            documents = {}
            for index, operation in enumerate(operations):
                if not (
                    isinstance(operation, dict)
                    and isinstance(operation.get("id"), str)
                    and isinstance(operation.get("body"), str)
                ):
                    raise TrustedDocumentsError(
                        f"{path}: operation {index} needs a string `id` and `body`"
                    )
                documents[operation["id"]] = operation["body"]
        elif isinstance(payload, dict) and all(
            isinstance(key, str) and isinstance(value, str) for key, value in payload.items()
        ):
            documents = payload
        else:
            raise TrustedDocumentsError(
                f"{path} is neither an Apollo persisted-query manifest nor a {{hash: document}} map"
            )
        if not documents:
            raise TrustedDocumentsError(f"{path} holds no documents")
        return cls(documents)

    def by_hash(self, sha256: str) -> str | None:
        return self._by_hash.get(sha256)

    def by_id(self, document_id: str) -> str | None:
        """`sha256:<hex>` (the GraphQL-over-HTTP convention) or the id as the file has it."""
        if document_id.startswith("sha256:"):
            found = self._by_hash.get(document_id.removeprefix("sha256:"))
            if found is not None:
                return found
        return self._by_id.get(document_id)

    def holds(self, document: str) -> bool:
        return document_hash(document) in self._by_hash


class PersistedQueries:
    """Turns hash-only and `documentId` requests into ordinary ones, before anything else
    reads them; refuses what the protocol or the trusted-documents mode does not allow."""

    def __init__(
        self,
        backend: CacheBackend | None,
        *,
        apq: bool,
        trusted: TrustedDocuments | None,
        only_trusted: bool,
        max_entries: int,
    ) -> None:
        if only_trusted and trusted is None:
            raise TrustedDocumentsError(
                "PERSISTED_DOCUMENTS_ONLY needs PERSISTED_DOCUMENTS_FILE: without it every "
                "document would be refused"
            )
        # Without a cross-request cache, APQ still needs somewhere to keep its documents.
        self.backend = backend or MemoryBackend(max_entries, 64 * 1024 * 1024)
        self.apq = apq
        self.trusted = trusted
        self.only_trusted = only_trusted

    async def expand_query_string(self, query_string: bytes) -> bytes:
        if not self.only_trusted and not any(m in query_string for m in _MARKERS):
            return query_string
        params = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        extensions: Any = params.get("extensions")
        if extensions:
            try:
                extensions = orjson.loads(extensions)
            except orjson.JSONDecodeError:
                return query_string  # strawberry refuses it with its own message
        request: dict[str, Any] = {**params, "extensions": extensions}
        expanded = await self._expand(request)
        if expanded.get("query") == params.get("query"):
            return query_string
        params["query"] = expanded["query"]
        return urlencode(params).encode("latin-1")

    async def expand_body(self, body: bytes) -> bytes:
        if not self.only_trusted and not any(m in body for m in _MARKERS):
            return body
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body  # not ours to refuse: strawberry answers it
        if isinstance(payload, dict):
            return orjson.dumps(await self._expand(payload))
        if isinstance(payload, list):
            expanded = [await self._expand(p) if isinstance(p, dict) else p for p in payload]
            return orjson.dumps(expanded)
        return body

    async def _expand(self, request: dict[str, Any]) -> dict[str, Any]:
        query = request.get("query")
        query = query if isinstance(query, str) and query else None
        document_id = request.get("documentId")
        sha256 = _apq_hash(request.get("extensions"))
        if document_id is not None:
            query = self._by_document_id(document_id, query)
        if sha256 is not None:
            if query is None:
                query = await self._by_hash(sha256)
            elif document_hash(query) != sha256:
                raise BadUserInput("provided sha does not match query")
            elif self.apq and not self.only_trusted:
                await self.backend.set(_KEY + sha256, query.encode(), _TTL_SECONDS, (_TAG,))
        if self.only_trusted and query is not None:
            assert self.trusted is not None  # checked at construction
            if not self.trusted.holds(query):
                raise PersistedQueryNotInList(
                    "PersistedQueryNotInList: this gateway runs only its trusted documents"
                )
        if query is None:
            return request
        return {key: value for key, value in request.items() if key != "documentId"} | {
            "query": query
        }

    def _by_document_id(self, document_id: object, query: str | None) -> str:
        if not isinstance(document_id, str) or not 0 < len(document_id) <= _MAX_DOCUMENT_ID:
            raise BadUserInput(
                f"`documentId` must be a string of at most {_MAX_DOCUMENT_ID} characters"
            )
        found = self.trusted.by_id(document_id) if self.trusted is not None else None
        if found is None:
            raise PersistedQueryNotFound(f"PersistedQueryNotFound: no document {document_id!r}")
        if query is not None and query != found:
            raise BadUserInput("`documentId` and `query` name different documents; send one")
        return found

    async def _by_hash(self, sha256: str) -> str:
        found = self.trusted.by_hash(sha256) if self.trusted is not None else None
        if found is None and self.apq and not self.only_trusted:
            stored = await self.backend.get(_KEY + sha256)
            found = stored.decode() if stored is not None else None
        if found is None:
            # Apollo's clients look for this exact message as well as the code.
            raise PersistedQueryNotFound("PersistedQueryNotFound")
        return found


def _apq_hash(extensions: object) -> str | None:
    if not isinstance(extensions, dict) or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise BadUserInput("Unsupported persisted query version: send version 1")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not _HASH.match(sha256):
        raise BadUserInput("`sha256Hash` must be 64 lowercase hexadecimal digits")
    return sha256
