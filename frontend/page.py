"""The web page at ``/``: plain HTML, CSS and JavaScript from frontend/static, no build step;
and ``/system``, what it shows of the order replicas and the trades."""
from flask import Blueprint, current_app

bp = Blueprint("page", __name__)


@bp.get("/")
def index():
    return current_app.send_static_file("index.html")


@bp.get("/system")
def system():
    return {"data": current_app.extensions["system"].snapshot()}
