"""The web's routers, one module per page group, and ``api`` for the JSON API under /api.

Adding a page: write a template that extends ``base.html``; add a module here with a
``router = APIRouter(include_in_schema=False, dependencies=[Authenticated])`` whose handler
reads the store through repository functions (``await web.query(...)`` with a function from
``gateway.store.queries`` or a feature's store module; no SQL in the web) and answers with
``web.page(...)``; include the router in ``gateway.web.app.create_app``, add its ``NavItem``
to ``context.NAV`` and its strings to both catalogues (``gateway/locale/*/LC_MESSAGES/``).
Authentication: see ``auth.current_viewer``.
"""
