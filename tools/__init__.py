"""What exists only to be measured or broken, kept out of the installed package."""
