"""The ``serial-line`` driver: instruments that speak lines of text over a serial port.

Scales, gas analysers, GPS receivers, lab instruments: each answers a command with a line
(``query`` mode) or sends lines by itself (``stream`` mode); a regular expression, JSON or
CSV turns a line into a record whose fields become the device's points.
"""
