"""The console's routes, one module per group of pages; `engine.console.app` maps the URLs."""
