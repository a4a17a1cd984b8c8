"""The lane screen: the touch page that self-checkout customers and cashiers see.

`posd run` serves it beside the kiosk API, on the same loopback port:

    GET /                  the page (static/index.html)
    GET /screen/…          its script, style sheet, pictures and catalogues (static/)
    GET /api/screen        what the page needs to know about this lane (see `web`)

The page is plain HTML, CSS and JavaScript with no build step and no outside requests;
it reads the lane from `GET /api/lane` and `GET /api/events` and acts through the
kiosk API's POST endpoints, like any other client. Its words come from one catalogue
per language (`static/i18n/<language>.json`, English being the source of truth).
"""
