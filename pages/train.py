"""Train: settings, Start, and live curves."""

import streamlit as st

st.title("Train")
