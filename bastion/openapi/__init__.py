"""The gateway's OpenAPI 3.1 document (served at ``GET /openapi.json``), built from the code's own
request validators and response models; see ``document.py``."""
