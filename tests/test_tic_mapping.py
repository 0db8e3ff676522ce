"""TIC labels to the vocabulary, and the sampling that keeps a frame a second from becoming a
reading a second (pure: frames built by hand, the clock given)."""

from __future__ import annotations

import pytest

from edge_agent.codecs.tic import TicFrame, TicGroup, TicMode
from edge_agent.drivers.tic import Sampler, SamplingPolicy, map_frame
from edge_agent.quantities import lookup_quantity
from edge_agent.records import Quality
from simulators.tic import LinkyMeter


def _frame(mode: TicMode, **data: str) -> TicFrame:
    return TicFrame(mode, tuple(TicGroup(label.replace("_", "-"), value)
                                for label, value in data.items()))


def test_historic_off_peak_frame() -> None:
    mapped = map_frame(_frame(TicMode.HISTORIC, ADCO="031762120162", OPTARIF="HC..",
                              ISOUSC="45", HCHC="010956910", HCHP="000123456", PTEC="HP..",
                              IINST="021", IMAX="090", PAPP="04860"))
    assert mapped.values == {
        "active_energy_import_1": pytest.approx(10_956.910),
        "active_energy_import_2": pytest.approx(123.456),
        "active_energy_import": pytest.approx(11_080.366),
        "subscribed_power": 9000.0, "current": 21.0, "apparent_power": 4860.0,
        "tariff_period": 2.0,
    }
    assert mapped.identity == {"serial": "031762120162", "contract": "HC.."}
    assert (mapped.tariff, mapped.overpower) == ("HP..", False)


def test_historic_base_and_tempo() -> None:
    base = map_frame(_frame(TicMode.HISTORIC, BASE="002345678", PTEC="TH.."))
    assert base.values == {"active_energy_import": pytest.approx(2345.678), "tariff_period": 1}
    tempo = map_frame(_frame(TicMode.HISTORIC, BBRHCJB="000001000", BBRHPJR="000002000",
                             PTEC="HPJR"))
    assert tempo.values == {"active_energy_import_1": 1.0, "active_energy_import_6": 2.0,
                            "active_energy_import": 3.0, "tariff_period": 6}


def test_historic_overpower_and_three_phase_alerts() -> None:
    over = map_frame(_frame(TicMode.HISTORIC, IINST="052", ADPS="052"))
    assert (over.overpower, over.overpower_detail) == (True, {"adps": "052"})
    short = map_frame(_frame(TicMode.HISTORIC, ADCO="1", IINST1="001", IINST2="062",
                             IINST3="000", ADIR2="062"))
    assert short.overpower is True
    assert short.values == {"current_l1": 1.0, "current_l2": 62.0, "current_l3": 0.0}


def test_standard_frame_of_the_simulator() -> None:
    meter = LinkyMeter(TicMode.STANDARD)
    groups = tuple(TicGroup(label, value) for label, value, _ in meter.groups(0))
    mapped = map_frame(TicFrame(TicMode.STANDARD, groups))
    values = mapped.values
    assert values["active_energy_import"] == pytest.approx(32_389.922)
    assert values["active_energy_import_1"] == pytest.approx(10_956.910)
    assert values["active_energy_import_11"] == pytest.approx(10_956.910)
    assert values["active_energy_import_14"] == 0
    assert (values["current_l1"], values["voltage_l1"]) == (7.0, 231.0)
    assert (values["subscribed_power"], values["apparent_power"]) == (6000.0, 1500.0)
    assert (values["apparent_power_max"], values["active_power"]) == (1500.0, 1350.0)
    assert values["tariff_period"] == 2
    assert "apparent_power_max_1" not in values  # SMAXSN-1 is yesterday's: not kept
    assert mapped.identity == {"serial": "041876097465", "prm": "09312300926695",
                               "vtic": "02", "contract": "H PLEINE/CREUSE"}
    assert (mapped.tariff, mapped.overpower) == ("HEURE  PLEINE", False)
    assert all(lookup_quantity(quantity) for quantity in values)


def test_standard_overpower_is_stge_bit_7_and_unknown_without_stge() -> None:
    assert map_frame(_frame(TicMode.STANDARD, STGE="013AC481")).overpower is True
    assert map_frame(_frame(TicMode.STANDARD, STGE="013AC401")).overpower is False
    assert map_frame(_frame(TicMode.STANDARD, STGE="ZZ")).overpower is None
    assert map_frame(_frame(TicMode.STANDARD, EAST="000000001")).overpower is None


def test_a_value_that_is_not_a_number_is_counted_not_mapped() -> None:
    mapped = map_frame(_frame(TicMode.STANDARD, EAST="0000A0001", SINSTS="00100"))
    assert mapped.values == {"apparent_power": 100.0}
    assert mapped.unreadable == ("EAST",)


# --- sampling -------------------------------------------------------------------------------

POLICY = SamplingPolicy(index_interval_s=60, max_interval_s=300, deadband_pct=5,
                        deadband_va=50, deadband_a=1, deadband_v=3)


def _kept(sampler: Sampler, now_s: float, **values: float) -> dict[str, float]:
    return {quantity: value for quantity, value, _ in sampler.select(values, now_s)}


def test_indexes_are_kept_every_interval_all_together() -> None:
    sampler = Sampler(POLICY)
    seen = [_kept(sampler, t, active_energy_import=1000 + t, active_energy_import_1=t)
            for t in range(0, 181, 2)]
    kept_at = [t * 2 for t, kept in enumerate(seen) if kept]
    assert kept_at == [0, 60, 120, 180]
    assert seen[30] == {"active_energy_import": 1060, "active_energy_import_1": 60}


def test_power_is_kept_beyond_its_deadband_and_at_the_longest_interval() -> None:
    sampler = Sampler(POLICY)
    assert _kept(sampler, 0, apparent_power=1000) == {"apparent_power": 1000}
    assert _kept(sampler, 1, apparent_power=1040) == {}  # under 50 VA
    assert _kept(sampler, 2, apparent_power=1050) == {"apparent_power": 1050}
    assert _kept(sampler, 3, apparent_power=5000) == {"apparent_power": 5000}
    assert _kept(sampler, 4, apparent_power=5200) == {}  # under 5 % of 5000
    assert _kept(sampler, 5, apparent_power=5250) == {"apparent_power": 5250}
    assert _kept(sampler, 304, apparent_power=5250) == {}
    assert _kept(sampler, 305, apparent_power=5250) == {"apparent_power": 5250}


def test_current_and_voltage_have_their_own_deadbands() -> None:
    sampler = Sampler(POLICY)
    _kept(sampler, 0, current=10, voltage_l1=230)
    assert _kept(sampler, 1, current=10.5, voltage_l1=232) == {}
    assert _kept(sampler, 2, current=11, voltage_l1=233) == {"current": 11, "voltage_l1": 233}


def test_states_are_kept_on_any_change() -> None:
    sampler = Sampler(POLICY)
    _kept(sampler, 0, tariff_period=1, subscribed_power=6000)
    assert _kept(sampler, 1, tariff_period=1, subscribed_power=6000) == {}
    assert _kept(sampler, 2, tariff_period=2, subscribed_power=6000) == {"tariff_period": 2}


def test_an_index_gone_backwards_is_suspect() -> None:
    sampler = Sampler(POLICY)
    sampler.select({"active_energy_import": 100.0}, 0)
    assert sampler.select({"active_energy_import": 99.0}, 60) == [
        ("active_energy_import", 99.0, Quality.SUSPECT)]


def test_zero_deadbands_keep_every_change() -> None:
    sampler = Sampler(SamplingPolicy(deadband_pct=0, deadband_va=0))
    _kept(sampler, 0, apparent_power=1000)
    assert _kept(sampler, 1, apparent_power=1001) == {"apparent_power": 1001}
    assert _kept(sampler, 2, apparent_power=1001) == {}
