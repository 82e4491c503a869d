"""The speaker-gender toolkit. Importing it silences two warnings that third-party packages print
on every command and that say nothing about the user's work: webrtcvad's (a Resemblyzer
dependency) ``pkg_resources is deprecated`` and torch's ``torch.jit.load is deprecated`` (Silero's
TorchScript model)."""

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
