"""The OpenAI Responses API over Bastion's chat pipeline: request and answer translation, the
Responses event stream, and the store of responses that ``previous_response_id`` continues from."""
