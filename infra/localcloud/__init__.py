"""The local cloud: moto's server plus the wiring read from template.yaml.

It is development tooling only; nothing under functions/ or shared/ imports it.
"""
