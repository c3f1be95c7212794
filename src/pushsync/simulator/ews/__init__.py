"""The EWS side of the simulator: SOAP in, SOAP out, one module per operation."""
