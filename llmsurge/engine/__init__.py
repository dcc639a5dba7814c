"""Load generation: OpenAI client, SSE parsing, prompts, arrivals, worker processes and the controller.

Never imports the UI.
"""
