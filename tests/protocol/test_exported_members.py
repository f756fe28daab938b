import protocol


def test_exported_members_are_sorted_and_public() -> None:
    exported = [name for name in dir(protocol) if not name.startswith("_")]

    assert protocol.__all__ == sorted(protocol.__all__)
    assert set(protocol.__all__) == set(exported)
