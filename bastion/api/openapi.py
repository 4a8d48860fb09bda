"""``GET /openapi.json``: the OpenAPI 3.1 document of this gateway (``bastion.openapi``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import gateway
from bastion.openapi.document import DocumentOptions, document_json


async def openapi(request: Request) -> Response:
    return Response(document_json(DocumentOptions.of(gateway(request).settings)), media_type="application/json")


routes = [Route("/openapi.json", openapi, methods=["GET"])]
