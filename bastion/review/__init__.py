"""Human review of ledger interactions, versioned datasets of approved examples and their export
to fine-tuning formats (docs/REVIEW.md). It knows neither the gateway nor HTTP: the admin API and
the CLI call ``ReviewService`` and ``DatasetService`` with a principal and plain values."""
