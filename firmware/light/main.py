"""Entry point on every board: pick the board adapter, load config.json, run the light."""

import sys

if sys.platform not in ("esp32", "rp2"):  # a board has /lib on sys.path; here lib/ is inside or beside
    for _lib in ("/lib", "/../lib"):     # the installed tree, or beside light/ in a source checkout
        sys.path.append((sys.path[0] or ".") + _lib)


def board_module():
    if sys.platform == "esp32":
        import board_esp32 as board
    elif sys.platform == "rp2":
        import board_picow as board
    else:
        import board_unix as board
    return board


def main():
    import config
    from app import App

    board = board_module()
    path = sys.argv[1] if len(sys.argv) > 1 else "config.json"
    try:
        cfg = config.load(path)
        app = App(cfg, board.Board(cfg))
    except (OSError, ValueError) as exc:
        print("setbridge light: cannot start: %s" % (exc,))
        return 1
    app.run()


sys.exit(main() or 0)
