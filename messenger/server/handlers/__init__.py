"""Action handlers, one module per group of actions; each exports ``ROUTES``."""
