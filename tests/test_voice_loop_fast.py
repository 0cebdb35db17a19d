"""The voice loop's turn logic on the fake line and fake engines: real time, no models, seconds per call."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fakes import FakeLine, FakeLlm, FakeStt, FakeTts, Say, Script

from cellcall.agent.agent import Agent
from cellcall.agent.dialogue import normalised
from cellcall.answering.screen import AnsweringPlan
from cellcall.config import VoiceSettings
from cellcall.engines import EngineError
from cellcall.goal import Goal, load_goal
from cellcall.record import CallStatus, Speaker
from cellcall.voice.loop import LoopResult, Opening, VoiceLoop
from cellcall.voice.reply import ModelParams

ROOT = Path(__file__).resolve().parent.parent
DENTIST = load_goal(ROOT / "goals" / "examples" / "dentist.md")
OPENING = "Hi, this is Alex calling for Sam Taylor about an appointment."


class Events:
    def __init__(self) -> None:
        self.states: list[str] = []
        self.turns: list = []
        self.latencies: list = []

    def on_state(self, state: str) -> None:
        self.states.append(state)

    def on_turn(self, turn) -> None:
        self.turns.append(turn)

    def on_latency(self, latency) -> None:
        self.latencies.append(latency)


def run_call(
    script: Script,
    *,
    voice: VoiceSettings | None = None,
    answering: AnsweringPlan | None = AnsweringPlan(),  # an outbound call: who answers is screened
    llm: FakeLlm | None = None,
    style: str = "scripted",
    tts: FakeTts | None = None,
    goal: Goal = DENTIST,
    opening: Opening | None = None,
    served: tuple[str, str, str] | None = None,  # (stt, llm, tts) as failover engines behind a relay report it
    params: ModelParams = ModelParams(60, 0.2),
    stt_delay_s: float = 0.05,  # each fake decode's duration
) -> tuple[LoopResult, FakeLine, FakeStt, Events]:
    line = FakeLine(script)
    stt = FakeStt(line, delay_s=stt_delay_s)
    tts = tts or FakeTts()
    llm = llm or FakeLlm()
    if served is not None:
        stt.last_served, llm.last_served, tts.last_served = served  # type: ignore[attr-defined]
    if opening is None:
        opening = Opening(OPENING)
        opening.prepared.set()  # no pre-synthesised audio: the reply synthesises the line itself
    events = Events()
    settings = voice or VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=4.0, max_duration_s=30.0)
    loop = VoiceLoop(
        line,
        stt,
        tts,
        llm,
        settings,
        Agent(goal, style),
        params,
        opening,
        answering=answering,
        listener=events,
    )
    line.start()
    try:
        result = loop.run()
    finally:
        line.close()
    return result, line, stt, events


RECEPTIONIST = [
    Say("Bright Smile Dental, this is Maria. How can I help you?", 1.2, pause_s=0.3, wait_for_agent=False),
    Say("Sure. Can I have the patient's name and patient number, please?"),
    Say("I have Friday at nine thirty in the morning. Would that work?"),
    Say("Great, Sam is booked for Friday at nine thirty."),
]


def agent_lines(result: LoopResult) -> list[str]:
    return [turn.text for turn in result.turns if turn.speaker is Speaker.AGENT]


def test_a_whole_booking_call_ends_with_the_agents_hang_up_and_no_repeats() -> None:
    result, line, _, events = run_call(Script(RECEPTIONIST))
    said = agent_lines(result)
    assert result.status is CallStatus.COMPLETED and result.reason == "agent hung up: objective met", said
    assert said[0] == OPENING and "4471" in said[1] and "Friday at nine thirty" in said[2]
    assert len({normalised(s) for s in said}) == len(said)  # nothing said twice
    assert line.hung_up_by is None  # the loop ends; the call (not the loop) sends the hang-up
    assert [t.speaker for t in result.turns].count(Speaker.CALLER) == 4
    assert events.latencies and all(lat.first_audio_ms for lat in events.latencies)


def test_the_caller_barging_in_cuts_the_reply_and_the_cut_is_recorded() -> None:
    script = Script(
        [
            Say("Hello, Bright Smile Dental.", 0.8, pause_s=0.2, wait_for_agent=False),
            Say("Sorry, which day did you say?", 1.0, barge_in_after_s=0.4),
        ]
    )
    long_reply = dataclasses.replace(DENTIST, objective="Move Sam's cleaning " + "to a much better time " * 6)
    result, line, _, _ = run_call(script, goal=long_reply, voice=VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=2.0))
    assert result.barge_ins and line.cleared >= 1
    cut = [turn for turn in result.turns if turn.barged_in]
    assert cut and cut[0].spoken_text is not None and len(cut[0].spoken_text) <= len(cut[0].text)


def test_a_pause_inside_a_turn_drops_the_speculative_reply_and_answers_the_whole_turn() -> None:
    script = Script(
        [
            Say("Bright Smile Dental.", 0.8, pause_s=0.2, wait_for_agent=False),
            Say("Sure, can I have", 0.7),
            Say("the patient's name and patient number, please?", 1.0, pause_s=0.3, wait_for_agent=False),
            Say("Thanks, goodbye.", 0.8),
        ],
        hangup_when_done=True,
    )
    result, _, _, _ = run_call(script)
    said = agent_lines(result)
    answers = [s for s in said if "4471" in s]
    assert len(answers) == 1, said  # one answer to the whole question, not one per piece


def test_a_pause_while_an_earlier_pauses_decode_runs_is_still_speculated_on() -> None:
    """The last pause comes while the decode started at a pause inside the turn still runs: the turn's words
    must not wait for the endpoint (1.5 s here) but follow that decode (~0.2 s wait + one 0.5 s decode)."""
    script = Script(
        [
            Say("Bright Smile Dental, how can I help?", 1.0, pause_s=0.2, wait_for_agent=False),
            Say("Can I have the patient's name", 0.7),
            Say("and number, please?", 0.3, pause_s=0.15, wait_for_agent=False),
            Say("Thanks, goodbye.", 0.8),
        ],
        hangup_when_done=True,
    )
    voice = VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=4.0, max_duration_s=30.0, endpoint_silence_ms=1500)
    _, _, stt, events = run_call(script, voice=voice, stt_delay_s=0.5)
    stt_ms = [lat.stt_ms for lat in events.latencies if lat.stt_ms is not None]
    assert stt_ms and max(stt_ms) < 1200, stt_ms  # skipped while busy, the words came at 1.5 s + 0.5 s
    assert stt.calls >= 3  # the greeting, the pause inside the question, the pause after it


def test_our_own_echo_never_counts_as_a_barge_in() -> None:
    script = Script(RECEPTIONIST, echo_gain=0.25)  # echo at -12 dB, 60 ms late
    result, _, _, _ = run_call(script)
    assert result.barge_ins == [] and not any(turn.barged_in for turn in result.turns)
    assert result.reason == "agent hung up: objective met"


def test_a_voicemail_greeting_gets_the_goal_message_then_a_hang_up() -> None:
    script = Script(
        [
            Say(
                "Hi, you've reached Sam's dentist. We can't take your call, please leave a message after the tone.",
                4.5,
                pause_s=0.2,
                wait_for_agent=False,
            ),
        ]
    )
    result, line, _, _ = run_call(script, answering=AnsweringPlan("Please call Sam back at 555 0100."))
    assert result.reason == "voicemail: message left"
    assert agent_lines(result)[-1] == "Please call Sam back at 555 0100."
    assert line.agent_seconds() > 0


def test_silence_after_the_opening_times_out() -> None:
    script = Script([Say("Hello?", 0.5, pause_s=0.2, wait_for_agent=False)])
    result, _, _, _ = run_call(script, voice=VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=1.5, max_duration_s=30))
    assert result.reason == "silence timeout" and agent_lines(result) == [OPENING]


def test_max_duration_ends_the_call() -> None:
    script = Script([Say("Hello?", 0.5, pause_s=0.2, wait_for_agent=False), Say("Mm.", 6.0)])
    result, _, _, _ = run_call(script, voice=VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=10, max_duration_s=3.0))
    assert result.reason == "max duration" and result.status is CallStatus.COMPLETED


def test_the_far_end_hanging_up_ends_the_loop_at_once() -> None:
    script = Script([Say("Hello, sorry, wrong number.", 1.0, pause_s=0.2, wait_for_agent=False)], hangup_when_done=True)
    result, _, _, _ = run_call(script)
    assert result.reason == "remote hang-up"


@pytest.mark.parametrize("style", ["scripted", "guided"])
def test_a_question_the_facts_cannot_answer_goes_to_the_model_and_its_bad_words_never_reach_the_line(style: str) -> None:
    script = Script(
        [
            Say("Bright Smile Dental.", 1.0, pause_s=0.2, wait_for_agent=False),
            Say("Okay, what is it about?", 1.0),
            Say("Is Sam allergic to anything?", 1.0),
            Say("Okay, thanks, bye.", 0.8),
        ],
        hangup_when_done=True,
    )
    llm = FakeLlm(["Receptionist: How can I help you today?", "(pause) I can help you with that."] * 2)
    result, _, _, _ = run_call(script, llm=llm, style=style)
    said = " ".join(agent_lines(result))
    assert llm.prompts, "the model was asked"
    assert "How can I help" not in said and "(" not in said and "Receptionist" not in said
    assert "I'm sorry, I don't know that." in said


@pytest.mark.parametrize("warm", [True, False])
def test_the_next_requests_prefix_is_warmed_while_the_caller_speaks(warm: bool) -> None:
    """Guided: every reply asks the model. Each request after the first starts with a prefix warmed when the
    caller began the turn it answers (system, examples, the history so far); nothing warms when it is off."""
    llm = FakeLlm()
    run_call(Script(RECEPTIONIST), llm=llm, style="guided", params=ModelParams(60, 0.2, warm_prefix=warm))
    primer = len(Agent(DENTIST, "guided").primer())  # system prompt and examples: no history yet
    with_history = [prompt for prompt in llm.prompts if len(prompt) - 1 > primer]
    assert with_history, "the model was asked after the first exchange"
    if not warm:
        assert llm.warmed == []
        return
    warmed = [prefix for prefix in llm.warmed if len(prefix) > primer]
    assert warmed and all(prefix[-1].role == "assistant" for prefix in warmed)  # ends with what the agent said
    assert any(prompt[:-1] == prefix for prompt in with_history for prefix in warmed)


def test_a_finished_question_is_answered_before_the_endpoint_and_a_trailing_number_is_waited_for() -> None:
    script = Script(
        [
            Say("Bright Smile Dental.", 0.8, pause_s=0.2, wait_for_agent=False),
            Say("What is this about?", 1.0),
            Say("Okay, my number is", 0.9),  # then 650 ms of silence: past the 500 ms endpoint
            Say("four one five, five five five, zero one nine nine. Would that work?", 1.6, pause_s=0.65, wait_for_agent=False),
            Say("Bye.", 0.5),
        ],
        hangup_when_done=True,
    )
    result, line, _, events = run_call(script, voice=VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=3.0))
    endpoints = [lat.endpoint_ms for lat in events.latencies if lat.endpoint_ms is not None]
    assert endpoints and min(endpoints) < 450, endpoints  # "What is this about?" answered at ~300 ms, not 500
    callers = [turn.text for turn in result.turns if turn.speaker is Speaker.CALLER]
    assert not any(turn.text == "Okay, my number is" for turn in result.turns), callers  # never answered mid-number
    assert any("0199" in text or "zero one nine nine" in text for text in callers)


def backchannel_call(sound: str, seconds: float) -> tuple[LoopResult, FakeLine, FakeTts]:
    """The receptionist asks; `sound` is made over the agent's answer 50 ms into it."""
    script = Script(
        [
            Say("Bright Smile Dental.", 0.8, pause_s=0.2, wait_for_agent=False),
            Say("Can I have the patient's name and patient number, please?", 1.5),
            Say(sound, seconds, barge_in_after_s=0.05),
            Say("Thanks, goodbye.", 0.8),
        ],
        hangup_when_done=True,
    )
    tts = FakeTts()
    result, line, _, _ = run_call(script, tts=tts)
    return result, line, tts


@pytest.mark.parametrize(("sound", "seconds"), [("Mm-hm.", 0.4), ("Okay.", 0.3), ("(coughs)", 0.25)])
def test_a_backchannel_over_the_agent_pauses_it_and_the_same_reply_goes_on(sound: str, seconds: float) -> None:
    result, line, tts = backchannel_call(sound, seconds)
    said = agent_lines(result)
    answer = [turn for turn in result.turns if turn.speaker is Speaker.AGENT and "4471" in turn.text]
    assert len(result.barge_ins) == 1 and result.backchannels == result.barge_ins, said  # stopped, then went on
    assert len(answer) == 1 and not answer[0].barged_in, said  # one reply, played out: not cut, not said again
    assert sum("4471" in text for text in tts.spoken) == 1  # the rest was not synthesised twice
    resumed = [h for h in line.heard if h.at > result.backchannels[0]]
    assert resumed, "nothing of the reply played after the backchannel"
    order = [turn.text for turn in result.turns]
    if sound != "(coughs)":  # the caller's words follow the reply they were said over
        assert order.index(sound) == order.index(answer[0].text) + 1, order


def test_a_short_real_interruption_still_takes_the_floor() -> None:
    result, _, _ = backchannel_call("Wait, what?", 0.4)
    cut = [turn for turn in result.turns if turn.barged_in]
    assert result.barge_ins and not result.backchannels
    assert cut and "4471" not in (cut[0].spoken_text or "")
    callers = [turn.text for turn in result.turns if turn.speaker is Speaker.CALLER]
    assert "Wait, what?" in callers
    after = [turn for turn in result.turns[result.turns.index(cut[0]) + 1 :] if turn.speaker is Speaker.AGENT]
    assert after, "the interruption was never answered"


def test_engines_behind_a_relay_say_who_served_each_reply() -> None:
    """Failover engines (cellcall.relay) expose last_served; the loop writes it into each latency row."""
    script = Script(
        [Say("Bright Smile Dental.", 0.8, pause_s=0.2, wait_for_agent=False), Say("Bye.", 0.5)], hangup_when_done=True
    )
    voice = VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=3.0)
    _, _, _, events = run_call(script, voice=voice, served=("relay", "local", "relay"))
    assert events.latencies and events.latencies[0].served_by == "stt=relay llm=local tts=relay"


class BrokenTts(FakeTts):
    """Synthesises the lines made while it rang, then fails, as a relay with relay_fallback = "none" does."""

    def synthesize(self, text, cancel=None):
        raise EngineError("relay failed and engines.relay_fallback is none: connection reset")


def test_engines_that_fail_mid_call_get_an_apology_then_a_failed_hang_up() -> None:
    script = Script([Say("Bright Smile Dental.", 0.8, pause_s=0.2, wait_for_agent=False), Say("What is it about?", 1.0)])
    opening = Opening(OPENING, audio=list(FakeTts().synthesize(OPENING)))
    opening.apology = list(FakeTts().synthesize("sorry"))  # made while it rang, as OpeningPrep does
    opening.prepared.set()
    voice = VoiceSettings(post_dial_delay_s=1.0, silence_timeout_s=5.0)
    result, _, _, _ = run_call(script, voice=voice, tts=BrokenTts(), opening=opening)
    assert result.status is CallStatus.FAILED and result.reason.startswith(
        "engines failed, apologised: EngineError: relay failed"
    )
    assert agent_lines(result)[-1] == "I'm sorry, I'm having a technical problem and have to end the call. Goodbye."


def test_a_turn_answered_early_that_goes_on_is_one_turn_in_the_transcript() -> None:
    script = Script(
        [
            Say("Bright Smile Dental.", 0.8, pause_s=0.2, wait_for_agent=False),
            Say("Is this about Sam's appointment?", 1.0),
            Say("Sorry, I mean, what day would work for Sam?", 1.4, pause_s=0.35, wait_for_agent=False),
            Say("Bye.", 0.5),
        ],
        hangup_when_done=True,
    )
    # the answer, thought out from the 120 ms pause on, is not on air before they go on (350 ms + 120 ms to hear it)
    result, _, _, _ = run_call(script, tts=FakeTts(delay_s=0.45))
    callers = [turn.text for turn in result.turns if turn.speaker is Speaker.CALLER]
    assert "Is this about Sam's appointment?" not in callers, callers  # answered early, then heard whole
    assert "Sorry, I mean, what day would work for Sam?" in callers
