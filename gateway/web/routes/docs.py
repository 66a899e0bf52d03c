"""The offline API documentation page, rendered from the app's own OpenAPI schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from gateway.web.auth import Authenticated
from gateway.web.context import Web

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


def _endpoints(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per path and method, in the schema's order."""
    endpoints = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "where": p.get("in", ""),
                            "required": bool(p.get("required", False)),
                        }
                        for p in operation.get("parameters", [])
                    ],
                }
            )
    return endpoints


@router.get("/docs", response_class=HTMLResponse)
async def docs_page(request: Request, web: Web) -> HTMLResponse:
    """The API described from the OpenAPI schema, rendered here (Swagger UI needs a CDN)."""
    return web.page(request, "docs.html", {"endpoints": _endpoints(request.app.openapi())})


@router.get("/openapi.json")
async def openapi_schema(request: Request) -> JSONResponse:
    """The OpenAPI schema (served here, behind sign-in, instead of FastAPI's open route)."""
    return JSONResponse(request.app.openapi())
