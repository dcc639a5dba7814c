"""Screens of the app: the main dashboard and the preset picker."""
