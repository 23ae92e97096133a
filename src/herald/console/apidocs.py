"""`/docs`: Swagger UI from Herald itself, not from a CDN.

FastAPI's default page loads Swagger UI's script and style from a CDN (and its icon from
FastAPI's site), so on a network without internet access, where internal services live,
it was a blank page. The same page is built here by FastAPI's `get_swagger_ui_html`
pointed at the copy vendored in `static/swagger-ui/` (swagger-ui-dist, see VENDORED.txt),
with Swagger UI's online validator turned off (it would send the schema to
validator.swagger.io). Its one inline script, which starts Swagger UI, is allowed by its
hash in the page's Content-Security-Policy; no other inline script and nothing from
another origin can run or load.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/static"
router = APIRouter(include_in_schema=False)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _policy(html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self';"
        " img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none';"
        " base-uri 'none'; form-action 'none'"
    )


def docs_page(openapi_url: str, title: str) -> HTMLResponse:
    response = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(response.body).decode()
    response.headers["Content-Security-Policy"] = _policy(html)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get(DOCS_PATH)
async def swagger_ui() -> HTMLResponse:
    return docs_page("/openapi.json", "Herald - Swagger UI")
