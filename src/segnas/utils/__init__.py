"""Small helpers shared by stages: output folders, seeding, file I/O."""


class Refused(ValueError):
    """A re-run that what its run folder holds forbids (records of another context, a checkpoint of another
    schedule length); raised before the stage changes anything, so the attempt it started is undone
    (:func:`segnas.utils.run.undone_when_refused`)."""
