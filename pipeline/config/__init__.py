"""Configuration: typed params, the profiles' defaults, the project a command runs on."""
