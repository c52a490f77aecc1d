"""Process entry points: the console scripts that wire components into programs.

The only place allowed to import several components at once (the operator serves the webhook).
"""
