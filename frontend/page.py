"""The web page at ``/``: plain HTML, CSS and JavaScript from frontend/static, no build step."""
from flask import Blueprint, current_app

bp = Blueprint("page", __name__)


@bp.get("/")
def index():
    return current_app.send_static_file("index.html")
