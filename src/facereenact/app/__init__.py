"""The use cases (animate, fit, pncc, batch, bench, …): what the command line and the web page call."""
