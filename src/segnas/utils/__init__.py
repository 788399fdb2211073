"""Small helpers shared by stages: output folders, seeding, file I/O."""
