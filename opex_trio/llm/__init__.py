"""The OpenAI-compatible chat completion client: requests, retries, streaming and typed results."""
