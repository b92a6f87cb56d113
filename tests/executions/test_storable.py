from executions.storable import REPLACEMENT, storable_json, storable_text


def test_it_replaces_nul_and_lone_surrogates():
    assert storable_text("a\x00b\ud800c") == (f"a{REPLACEMENT}b{REPLACEMENT}c", 2)


def test_it_leaves_ordinary_text_alone():
    text = "héllo 👋 \u2028 tab\t"
    assert storable_text(text) == (text, 0)


def test_it_cleans_keys_and_values_at_any_depth():
    value = {"k\x00": ["ok", {"deep": "x\udfff"}], "n": 1, "f": 1.5, "none": None, "b": True}
    clean, changed = storable_json(value)
    assert changed == 2
    assert clean == {f"k{REPLACEMENT}": ["ok", {"deep": f"x{REPLACEMENT}"}], "n": 1, "f": 1.5, "none": None, "b": True}
    assert "k\x00" in value  # the input is not modified


def test_an_unchanged_value_is_returned_as_is():
    value = {"a": [1, "two"]}
    clean, changed = storable_json(value)
    assert changed == 0 and clean is value


def test_json_read_back_is_always_storable():
    import json

    from executions.storable import StorableJSONDecoder

    stored = json.dumps({"lone": "a\ud800b", "nul": "\x00", "emoji": "😀"})  # escaped, as Django writes it
    assert json.loads(stored, cls=StorableJSONDecoder) == {
        "lone": f"a{REPLACEMENT}b",
        "nul": REPLACEMENT,
        "emoji": "😀",
    }
    plain = json.dumps({"emoji": "😀", "text": "ok"})
    assert json.loads(plain, cls=StorableJSONDecoder) == {"emoji": "😀", "text": "ok"}
