import protocol


def test_exported_members_are_public_and_complete() -> None:
    # The order of __all__ is ruff's (RUF022: constants, then classes, then functions).
    exported = [name for name in dir(protocol) if not name.startswith("_")]

    assert len(protocol.__all__) == len(set(protocol.__all__))
    assert set(protocol.__all__) == set(exported)
