"""The web's routers, one module per page group, and ``api`` for the JSON API under /api.

Adding a page: write a template that extends ``base.html``; add a module here with a
``router = APIRouter(include_in_schema=False, dependencies=[Authenticated])`` whose handler
reads the store through repository functions (``await web.query(...)`` with a function from
``gateway.store.queries`` or a feature's store module; no SQL in the web) and answers with
``web.page(...)``; include the router in ``gateway.web.app.create_app``, add its path
template with the roles that may open it to ``gateway.web.access.ROUTE_ROLES`` (the app
refuses to start without it), its ``NavItem`` to ``context.NAV`` (hidden from those who may
not open it) and its strings to both catalogues (``gateway/locale/*/LC_MESSAGES/``).

Sign-in, roles and CSRF: ``auth.guard`` runs for every route (the table's roles; the CSRF token
of every POST/PUT/DELETE). A handler gets the viewer with ``Annotated[Viewer,
Authenticated]`` (or ``Depends(auth.require(Role.X))`` to narrow the roles further); a form
carries ``<input type="hidden" name="csrf" value="{{ csrf }}">`` and is read with
``await gateway.web.forms.form_fields(request)``; a page with a form passes
``web.page(..., refresh=False)`` so the live refresh does not wipe what is typed. An
electronic signature re-asks the password: ``gateway.web.signature.confirm_signature``.
A page that shows a patient's results logs it: ``gateway.web.access_log.log_results_shown``.
"""
