"""Who answered an outbound call and how to get through: a person, a mailbox, a phone menu, hold.

wording.py reads one utterance's words, tones.py hears beeps and music frame by frame, menu.py picks
the key for a phone menu, screen.py holds the call's answering state for the voice loop.
"""
